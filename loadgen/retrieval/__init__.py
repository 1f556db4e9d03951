"""`loadgen retrieval`: recall@k and hit@k of every search variant on the labeled
conversational set (``data/``), loaded into a private worker on the live stack."""
