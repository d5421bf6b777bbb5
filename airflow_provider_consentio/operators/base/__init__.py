"""What the operators share: their base classes, the one export loop and its sinks, the one write path, and the
helpers these use (inputs, windows, atomic storage, lineage, checkpoints).

Kept apart from the operator modules beside it, so that every module of ``operators/`` is one that defines
operators, and the provider info lists them all without naming each.
"""
