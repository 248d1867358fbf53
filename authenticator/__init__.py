"""jupyterhub-annotation-auth: the domain core (`core.Core`) and, in `auth`, the in-hub
authenticator (the ``annotation`` entry point). Importing this package or any core
module loads neither Tornado nor JupyterHub.
"""
