package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/builder"
)

// buildFlags are the flags of lading build that need more than one
// Request field or some parsing.
type buildFlags struct {
	outputs, buildArgs, contexts, secrets, ssh, securityOpts []string
	logLimit                                                 string
	check                                                    string
	memory                                                   string
	push                                                     bool
	remote                                                   remoteFlags
}

func newBuildCmd() *cobra.Command {
	var (
		f   buildFlags
		req builder.Request
	)
	cmd := &cobra.Command{
		Use:   "build [flags] CONTEXT|-",
		Short: "Build an image from a recipe",
		Long: `Build an image from a recipe (any Dockerfile is a valid recipe).

The recipe is -f FILE (- for stdin), else Recipe, Dockerfile or Containerfile
in CONTEXT. With CONTEXT "-", stdin holds a tar archive (plain or compressed)
of the context, or a recipe alone with an empty context. The image is saved
in the local store under every -t name, and written to each --output:
  type=oci,dest=PATH      OCI image layout tarball (skopeo oci-archive:PATH)
  type=docker,dest=PATH   tarball for "docker load"
  type=local,dest=DIR     the image's root filesystem as a directory
  type=registry           push to every -t name (same as --push)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBuild(cmd, args[0], &req, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&req.RecipeFile, "file", "f", "", "recipe file (- for stdin)")
	fl.StringArrayVarP(&req.Tags, "tag", "t", nil, "name the image NAME[:TAG] (repeatable)")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set a build argument KEY=VALUE (repeatable)")
	fl.StringVar(&req.Target, "target", "", "build this stage (name or index) instead of the last")
	fl.StringVar(&f.check, "check", "", "lint the recipe without building (--check=error: exit 1 on warnings)")
	fl.Lookup("check").NoOptDefVal = "warn"
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "write the image: type=oci|docker|local,dest=PATH or type=registry (repeatable)")
	fl.StringVar(&req.Progress, "progress", "auto", "progress output: "+strings.Join(builder.ProgressModes, ", "))
	fl.StringVar(&f.logLimit, "log-limit", "8m", "output shown per step (e.g. 512k, 8m, 1g); -1 for no limit")
	fl.IntVar(&req.Jobs, "jobs", 0, "RUN steps executed at once (default: number of CPUs)")
	fl.BoolVar(&req.NoCache, "no-cache", false, "run every step; neither use nor record the build cache")
	fl.StringArrayVar(&req.NoCacheFilter, "no-cache-filter", nil, "do not use the cache for this stage (repeatable)")
	fl.BoolVar(&req.ExplainCache, "explain-cache", false, "say why the first cache miss of each stage missed")
	fl.BoolVar(&req.Squash, "squash", false, "squash the layers the target stage adds into one")
	fl.StringVar(&req.Pull, "pull", builder.PullMissing, "pull FROM images: missing (when not in the local store), always or never")
	fl.Lookup("pull").NoOptDefVal = builder.PullAlways
	fl.BoolVar(&f.push, "push", false, "push the image to every -t name (same as --output type=registry)")
	f.remote.register(cmd)
	fl.StringArrayVar(&req.CacheFrom, "cache-from", nil, "use a shared build cache: type=registry,ref=REF or type=local,src=DIR (repeatable)")
	fl.StringArrayVar(&req.CacheTo, "cache-to", nil, "export the build cache: type=registry,ref=REF[,mode=min|max] or type=local,dest=DIR[,mode=...] (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable)")
	fl.StringArrayVar(&f.ssh, "ssh", nil, "ssh agent for RUN --mount=type=ssh: default (SSH_AUTH_SOCK) or ID=SOCKET (repeatable)")
	fl.StringArrayVar(&f.contexts, "build-context", nil, "named context NAME=DIR or NAME=docker-image://REF for FROM NAME / COPY --from=NAME (repeatable)")
	fl.StringVar(&req.Network, "network", builder.NetworkDefault, "network of RUN steps: default (private, with outbound access), none, or host (needs --allow network.host)")
	fl.StringArrayVar(&req.Allow, "allow", nil, "grant an entitlement: network.host (host networking for --network host and RUN --network=host) (repeatable)")
	fl.StringVar(&req.Hostname, "hostname", "", "hostname of RUN steps")
	fl.StringVar(&req.Snapshotter, "snapshotter", builder.SnapshotterOverlay, "snapshotter: overlay (native where overlayfs cannot mount) or native")
	fl.StringVar(&req.Platform, "platform", "", "target platforms os/arch[/variant], comma-separated: several build an OCI image index")
	fl.StringVar(&f.memory, "memory", "", "memory limit of RUN steps (e.g. 512m, 2g)")
	fl.Int64Var(&req.Limits.Pids, "pids-limit", 0, "process limit of RUN steps")
	fl.Float64Var(&req.Limits.CPUs, "cpus", 0, "CPU limit of RUN steps, in cores")
	fl.StringArrayVar(&f.securityOpts, "security-opt", nil, "seccomp filter of RUN steps: seccomp=unconfined or seccomp=PROFILE.json (Docker's format); default: Docker's default profile")
	return cmd
}

// runBuild completes the request from the flags, builds, and prints the
// image digest.
func runBuild(cmd *cobra.Command, contextArg string, req *builder.Request, f buildFlags) (err error) {
	if contextArg == "-" {
		req.ContextArchive = cmd.InOrStdin()
	} else {
		req.ContextDir = contextArg
	}
	req.Stdin, req.ProgressOutput = cmd.InOrStdin(), cmd.ErrOrStderr()
	for _, spec := range f.outputs {
		o, err := builder.ParseOutput(spec)
		if err != nil {
			return err
		}
		req.Outputs = append(req.Outputs, o)
	}
	if f.push {
		req.Outputs = append(req.Outputs, builder.Output{Type: "registry"})
	}
	if req.BuildArgs, err = builder.ParseBuildArgs(f.buildArgs); err != nil {
		return err
	}
	if req.Contexts, err = builder.ParseContexts(f.contexts); err != nil {
		return err
	}
	if req.Secrets, err = builder.ParseSecrets(f.secrets); err != nil {
		return err
	}
	if req.SSH, err = builder.ParseSSH(f.ssh); err != nil {
		return err
	}
	if req.Seccomp, err = builder.ParseSecurityOpts(f.securityOpts); err != nil {
		return err
	}
	if f.memory != "" {
		if req.Limits.Memory, err = builder.ParseSize(f.memory); err != nil {
			return fmt.Errorf("--memory: %w", err)
		}
	}
	if req.LogLimit, err = parseLogLimit(f.logLimit); err != nil {
		return err
	}
	if req.Epoch, err = builder.EpochFromEnv(); err != nil {
		return err
	}
	if req.Store, err = openStore(cmd); err != nil {
		return err
	}
	if req.Remote, err = f.remote.options(cmd, req.Store); err != nil {
		return err
	}
	if f.check != "" {
		return runCheck(cmd, *req, f.check)
	}
	res, err := builder.Build(cmd.Context(), *req)
	if err != nil {
		return err
	}
	fmt.Fprintln(cmd.OutOrStdout(), res.Digest)
	return nil
}

// runCheck is build --check: the linter's warnings, and no build. With
// --check=error (or the recipe's "# check=error=true") warnings fail.
func runCheck(cmd *cobra.Command, req builder.Request, mode string) error {
	if mode != "warn" && mode != "error" {
		return fmt.Errorf("--check must be given alone or as --check=error, not %q", mode)
	}
	ws, strict, err := builder.Check(cmd.Context(), req)
	if err != nil {
		return err
	}
	for _, w := range ws {
		fmt.Fprintln(cmd.OutOrStdout(), w)
	}
	if len(ws) > 0 && (mode == "error" || strict) {
		return fmt.Errorf("%s: %d linter warning(s)", ws[0].Loc.File, len(ws))
	}
	return nil
}

// parseLogLimit reads --log-limit: a size, or -1 for no limit.
func parseLogLimit(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	n, err := builder.ParseSize(s)
	if err != nil {
		return 0, fmt.Errorf("--log-limit: %w (want SIZE or -1)", err)
	}
	return n, nil
}
