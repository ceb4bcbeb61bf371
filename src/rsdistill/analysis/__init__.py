"""Analysis: the numbers behind the article's figures (similarity, soft labels, embeddings,
fidelity, cost, per-class changes, curves), the figures drawn from them, and ``rsdistill analyze``.

The maths modules take arrays and return arrays or floats (hand-checkable, no torch, no files);
``outputs`` runs stored models on a split; ``figures`` draws; ``analyze`` ties them together."""
