"""jupyterhub-annotation-auth: the authenticator and the domain core."""

from .auth import AnnotationAuthenticator

__all__ = ["AnnotationAuthenticator"]
