"""The one error type of the domain's services."""


class DomainError(Exception):
    """A change the rules do not allow; ``message`` is safe to show to whoever asked, ``code`` names the rule.

    Views, admin actions and the API show ``message`` and, in problem details, ``code``. A service
    raises a subclass only where a caller must tell that case apart from the others.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
