"""One benchmark run: which cases, how each is prepared and probed, what a case result holds."""
