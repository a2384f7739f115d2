"""
The `scheduler` management command's parts: its command line (`arguments`), what
operators type turned into trigger specs and durations (`parsing`), what it prints
(`output` for tables and JSON, `presenters` for jobs, executions and the audit trail),
waiting for a run-now request (`runs`), and the one place where scheduler errors become
`CommandError`s (`errors`).
"""
