"""Files ptq writes and reads back: runs, their schema and migrations, baselines, history, chains."""
