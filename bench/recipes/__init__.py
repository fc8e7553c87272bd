"""The baselines of the load sweep as users deploy them: a model behind FastAPI, `uvicorn --workers N`."""
