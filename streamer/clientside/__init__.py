"""Client-side SDKs (browser, mobile): request contexts, the parsed evaluation model, groups of
streams sharing a context, their streams and the polling routes."""
