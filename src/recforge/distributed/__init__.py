"""Scale-out on Ray: training, batch scoring, evaluation and tuning across Ray workers."""
