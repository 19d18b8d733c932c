// Package progress renders the progress of a build — steps starting,
// their output, cache hits, failures — in one of four modes, like the
// --progress flag of docker buildx.
//
// The builder reports events to a [Reporter]; the Reporter renders them:
//
//   - plain: line-oriented output for CI logs. Every line is prefixed with
//     its step number ("#3 ..."), a step ends with "#3 DONE 1.23s",
//     "#3 CACHED" or "#3 ERROR: ...", and RUN output is printed in full.
//   - tty: a live view, redrawn about ten times a second, with one line per
//     step, a timer, the last lines of each running step's output, and a
//     summary when the build ends.
//   - json: one JSON object per event and per output line, for machines.
//   - quiet: nothing at all; the CLI prints the image digest itself.
//
// "auto" picks tty when the output is a terminal and plain otherwise.
//
// In plain and tty mode, the last lines of output of every failed step are
// printed again when the build ends, so the cause of a failure is not lost
// above a long log. Every Reporter also implements [Tailer], which returns
// those lines so that the builder can put them into its error.
//
// A Reporter is safe for concurrent use: steps of independent stages run in
// parallel and their events interleave. A build reports like this:
//
//	r, err := progress.New("auto", os.Stderr)
//	if err != nil {
//		return err
//	}
//	defer r.Close() // ends the live view, prints failures and the summary
//
//	r.Start(progress.Step{ID: 3, Stage: "builder", Index: 2, Total: 5, Text: "RUN make"})
//	cmd.Stdout, cmd.Stderr = r.Output(3), r.Output(3)
//	err = cmd.Run()
//	r.Done(3, false, err)
//
//	r.Start(progress.Step{ID: 4, Stage: "builder", Index: 3, Total: 5, Text: "COPY . /src"})
//	r.Done(4, true, nil) // a cache hit
//
//	r.Log("wrote oci output: %s", path)
package progress
