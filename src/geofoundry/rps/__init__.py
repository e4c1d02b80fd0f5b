"""Running point search (RPS): predict and postprocess settings tried on the validation maps, scored on the
validation truth, the best point handed back (``metrics/rps.json``, ``reports/rps.json``) and written into
params.yaml on request.

It composes the predict, postprocess and evaluate packages; none of them imports it. :mod:`.run` is the stage;
:mod:`.settings` is what the params loader checks (it imports no stage package), :mod:`.space` adds the checks
against the postprocess operations and turns a point into a predict config and a chain.
"""
