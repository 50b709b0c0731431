"""One module per dashboard panel; each exports `routes: list[Route]`."""
