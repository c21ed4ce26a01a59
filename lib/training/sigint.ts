/**
 * Ctrl-C in a training loop (SparseTrainer, Seq2SeqTrainer): the first asks the loop to write a checkpoint and
 * stop after the current step, a second quits at once (exit code 130, as a shell reports SIGINT).
 */

/**
 * Installs the handler; `requestStop` records the request and says whether one was already made. Returns the
 * function that removes the handler (call it when the loop ends, whatever way).
 */
export function stopOnSigint(requestStop: () => boolean): () => void {
  const onSigint = () => {
    if (requestStop()) process.exit(130);
    process.stderr.write('\nblockprune: stopping after this step, writing a checkpoint (Ctrl-C again to quit now)\n');
  };
  process.on('SIGINT', onSigint);
  return () => process.removeListener('SIGINT', onSigint);
}
