"""The one exception type a step raises for problems the user can fix."""


class PipelineError(Exception):
    """A problem with inputs, params or the environment, explained for the user.

    Steps catch it at the top (see ``lenet_compare.core.cli``), print the message without a
    traceback and exit non-zero. Anything else is a bug and keeps its traceback.
    """
