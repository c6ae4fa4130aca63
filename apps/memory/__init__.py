"""Agent memory: semantic facts in pgvector and relationships in the workspace's AGE graph.

Entry points for other apps (everything runs in the active workspace's schema and graph):

* ``apps.memory.tools``: ``memory_search``, ``memory_write``, ``memory_context`` (JSON-ready
  dicts) and their argument schemas, for the runtime's tools and a mission's first context.
* ``apps.memory.services``: ``memory_write_fact``, ``fact_correct``, ``fact_retire``,
  ``document_ingest``, ``document_retire``, ``entity_upsert``, ``relationship_write``,
  ``relationship_close``, ``entity_type_add``, ``relationship_type_add``, ``memory_reembed``.
  Each commits its rows, its graph changes and its journal entry in one transaction.
* ``apps.memory.selectors``: ``memory_search`` (vector or hybrid), documents, facts, entities.
* ``apps.memory.context``: ``context_for_subject`` within a token budget.
* ``apps.memory.embedders``: the embedder registry (``local-minilm``, ``openai``).
"""
