"""Models: the offline catalog, every engine behind one protocol, and the model-server launcher.

    catalog.py    catalog names -> verified, prepared folders in $TINYACT_HOME
    engines/      transformers, vLLM, OpenAI-compatible HTTP, replay/scripted, batching
    server.py     ``tinyact serve-model``: an OpenAI-compatible server for a catalog model
"""
