"""The repository's own tooling around the product: the servers, the production-shaped Airflow and the browser
that the end-to-end tests, the benchmarks and ``make screenshots`` start. Not part of the wheel."""
