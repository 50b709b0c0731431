"""Built-in view kinds; each module registers one `ViewKind` when imported."""
