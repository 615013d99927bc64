"""Models: the offline catalog, every engine behind one protocol, and the model-server launcher.

    catalog.py      catalog names -> verified, prepared folders (or verified GGUF files) in $TINYACT_HOME
    engines/        transformers, vLLM, llama.cpp, OpenAI-compatible HTTP, replay/scripted, batching
    server.py       ``tinyact serve-model``: an OpenAI-compatible server (vLLM or llama.cpp) for a model
    gguf_export.py  ``tinyact models export-gguf``: a model folder (a merged student) to GGUF
"""
