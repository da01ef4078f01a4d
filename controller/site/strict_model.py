"""The base of every config model: immutable, unknown keys rejected, no silent coercion of types."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # extra="forbid": a misspelt key is an error, not a default silently used (fail closed).
    # strict=True: "5" is not accepted for a number; YAML already gives real numbers and booleans.
    # frozen=True: a loaded config cannot be changed behind the controller's back.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
