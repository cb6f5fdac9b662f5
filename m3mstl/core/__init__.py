"""Core: project-wide vocabulary with no other project import.

The 68-landmark schema (`landmarks`), head pose (`pose`), box geometry (`boxes`), atomic file
writes (`fileio`), the torch device (`device`) and progress reporting (`progress`).
"""

#: The largest seed anything here accepts: numpy's seed range (torch takes the same). Checked by the
#: run configuration and by the generator.
MAX_SEED = 2**32 - 1
