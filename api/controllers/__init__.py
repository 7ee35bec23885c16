"""The API's controllers, one module per resource; ``api.app`` mounts them."""

from api.controllers.examples import ExamplesController
from api.controllers.feedback import FeedbackController
from api.controllers.industries import IndustriesController
from api.controllers.jobs import JobsController
from api.controllers.models import ModelsController
from api.controllers.operations import audit_trail, export, health, health_head, metrics, ready
from api.controllers.tasks import TasksController
from api.controllers.training import TrainingController

__all__ = [
    "ExamplesController",
    "FeedbackController",
    "IndustriesController",
    "JobsController",
    "ModelsController",
    "TasksController",
    "TrainingController",
    "audit_trail",
    "export",
    "health",
    "health_head",
    "metrics",
    "ready",
]
