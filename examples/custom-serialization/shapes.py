"""A value class and the two converters that carry it over the wire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyrite.api as api

CLASS_NAME = "example.shapes.Rectangle"


@dataclass(frozen=True)
class Rectangle:
    width: float
    height: float

    def area(self) -> float:
        return self.width * self.height


def rectangle_to_dict(rect: Rectangle) -> dict[str, Any]:
    # the "__class__" key is what the receiving side dispatches on
    return {"__class__": CLASS_NAME, "width": rect.width, "height": rect.height}


def dict_to_rectangle(classname: str, data: dict[str, Any]) -> Rectangle:
    return Rectangle(data["width"], data["height"])


def register() -> None:
    """Teach every serializer in this process to send and receive Rectangles."""
    api.register_class_to_dict(Rectangle, rectangle_to_dict)
    api.register_dict_to_class(CLASS_NAME, dict_to_rectangle)
