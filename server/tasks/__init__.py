"""The task bank: built-in, procedural, JSONL and HumanEval tasks.

Hidden cases live here and leave only through the grader (`server/grading.py`); the
public view of a task is `Task.info()`.
"""

from .bank import TaskBank, UnknownTaskError, default_bank
from .model import (
    REVIEW_CATEGORIES,
    Defect,
    HiddenCase,
    ProgramExample,
    Task,
    TaskError,
)

__all__ = [
    "REVIEW_CATEGORIES",
    "Defect",
    "HiddenCase",
    "ProgramExample",
    "Task",
    "TaskBank",
    "TaskError",
    "UnknownTaskError",
    "default_bank",
]
