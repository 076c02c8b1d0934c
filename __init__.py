"""python_env: a sandboxed CPython environment for training and evaluating coding agents."""

# Absolute imports: test runners may import this file outside its package (the repo
# root is the package, under whatever name the checkout's directory has).
from python_env.client import PythonEnv
from python_env.models import PythonAction, PythonObservation, PythonState

__all__ = ["PythonAction", "PythonEnv", "PythonObservation", "PythonState"]
