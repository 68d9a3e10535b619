"""placeholder; the serializers work fills this in."""
