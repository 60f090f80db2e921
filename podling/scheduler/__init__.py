"""Scheduler: filter and score plugins that bind pending pods (issue 5).

Public API: :class:`Scheduler` (``start()`` / ``await stop()``), :class:`SchedulerOptions`,
the framework (:func:`schedule_one`, :class:`NodeInfo`, :class:`Status`, :class:`FitError`,
:class:`Profile`), :func:`default_profile` and :class:`SchedulingQueue`.
"""

from .framework import (Code, CycleState, FilterPlugin, FitError, NodeInfo, PodInfo, Profile,
                        ScheduleResult, ScorePlugin, Status, schedule_one)
from .plugins import default_profile
from .queue import QueueOptions, SchedulingQueue
from .scheduler import DEFAULT_SCHEDULER, Scheduler, SchedulerOptions

__all__ = ["Code", "CycleState", "DEFAULT_SCHEDULER", "FilterPlugin", "FitError", "NodeInfo",
           "PodInfo", "Profile", "QueueOptions", "ScheduleResult", "ScorePlugin", "Scheduler",
           "SchedulerOptions", "SchedulingQueue", "Status", "default_profile", "schedule_one"]
