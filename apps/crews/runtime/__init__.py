"""The mission runtime: the LangGraph graph, its checkpoints, the tool executor, the worker."""
