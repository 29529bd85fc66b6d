"""The shipped config files, one folder per dataset (eval/: victims, study/: studies). Each file's
get_config() returns a run config; files import their neighbours relatively."""
