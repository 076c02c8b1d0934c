"""python_env: a sandboxed CPython environment for training and evaluating coding agents."""

from .client import PythonEnv
from .models import PythonAction, PythonObservation, PythonState

__all__ = ["PythonAction", "PythonEnv", "PythonObservation", "PythonState"]
