"""Typed errors a person can act on."""


class ContractError(Exception):
    """Landing data breaks the data contract in a way no row-level quarantine can absorb.

    Raised, for example, when a master file is missing a required column: there is no
    good state to build from the delivery, so the step fails and the last good
    materialization stays in use.
    """

    def __init__(self, message: str, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class LandingMissing(FileNotFoundError):
    """The landing folder named does not exist: there is nothing to read (the folder is not created)."""
