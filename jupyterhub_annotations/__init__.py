"""jupyterhub-annotation-auth, installed under one import name.

The repository keeps its layout: ``authenticator/`` (the domain core and the in-hub
authenticator) and ``handlers/`` (the Tornado handlers) are installed as
``jupyterhub_annotations.authenticator`` and ``jupyterhub_annotations.handlers``, so the
distribution adds no generic top-level names to site-packages.
"""
