"""What the Lab shows: the read model of a run (live view, history, compare), the explanation of what its
parameters predict, the learner's predictions, and the panels' shared drawings."""
