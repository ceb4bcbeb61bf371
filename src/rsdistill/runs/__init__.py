"""What a run folder is: its file names, its marker, typed readers (:mod:`.folder`), and claiming
one for a run (:mod:`.claim`). Below every package that writes or reads runs (engine,
experiments, analysis, reports, deploy); depends only on ``errors``, ``io`` and ``yamlfile``."""
