"""Core: project-wide vocabulary with no other project import.

The 68-landmark schema (`landmarks`), head pose (`pose`), box geometry (`boxes`), atomic file
writes (`fileio`), the torch device (`device`) and progress reporting (`progress`).
"""
