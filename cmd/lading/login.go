package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
	"github.com/lading-build/lading/internal/atomicfile"
)

func newLoginCmd() *cobra.Command {
	var (
		f             remoteFlags
		user, pass    string
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "login [-u USER] [--password-stdin] REGISTRY",
		Short: "Log in to a registry",
		Long: `Check the credentials against REGISTRY, then store them in the "auths" of
$DOCKER_CONFIG/config.json (default ~/.docker/config.json), where lading,
docker, skopeo and crane find them. Without -u and --password-stdin, the user
name and password are read as lines from standard input.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in := bufio.NewReader(cmd.InOrStdin())
			var err error
			if user == "" {
				if passwordStdin {
					return errors.New("--password-stdin needs -u USER")
				}
				if user, err = prompt(cmd, in, "Username: "); err != nil {
					return err
				}
			}
			switch {
			case passwordStdin:
				b, err := io.ReadAll(io.LimitReader(in, 1<<20))
				if err != nil {
					return fmt.Errorf("reading the password: %w", err)
				}
				pass = strings.TrimRight(string(b), "\r\n")
			case pass != "":
				fmt.Fprintln(cmd.ErrOrStderr(), "warning: --password shows in the process list and shell history; use --password-stdin")
			default:
				if pass, err = prompt(cmd, in, "Password: "); err != nil {
					return err
				}
			}
			if user == "" || pass == "" {
				return errors.New("user name and password must not be empty")
			}
			st, err := openStore(cmd)
			if err != nil {
				return err
			}
			o, err := f.options(cmd, st)
			if err != nil {
				return err
			}
			reg := args[0]
			if err := image.CheckLogin(cmd.Context(), reg, user, pass, o); err != nil {
				return err
			}
			key := authKey(reg)
			auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
			err = updateDockerConfig(dockerConfigPath(), func(auths map[string]json.RawMessage) bool {
				for k := range auths {
					if image.RegistryHost(k) == image.RegistryHost(key) {
						delete(auths, k)
					}
				}
				auths[key], _ = json.Marshal(map[string]string{"auth": auth})
				return true
			})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Login Succeeded")
			return nil
		},
	}
	f.quiet = true
	f.register(cmd)
	cmd.Flags().StringVarP(&user, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&pass, "password", "p", "", "password (prefer --password-stdin)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout REGISTRY",
		Short: "Remove the stored credentials of a registry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := image.RegistryHost(args[0])
			found := false
			err := updateDockerConfig(dockerConfigPath(), func(auths map[string]json.RawMessage) bool {
				for k := range auths {
					if image.RegistryHost(k) == host {
						delete(auths, k)
						found = true
					}
				}
				return found
			})
			if err != nil {
				return err
			}
			if !found {
				fmt.Fprintf(cmd.OutOrStdout(), "Not logged in to %s\n", host)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Removing login credentials for %s\n", host)
			return nil
		},
	}
}

func prompt(cmd *cobra.Command, in *bufio.Reader, label string) (string, error) {
	fmt.Fprint(cmd.ErrOrStderr(), label)
	line, err := in.ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("reading %s: %w", strings.TrimSuffix(label, ": "), err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// authKey is the key of a registry in config.json's auths: Docker Hub
// keeps docker's historical "https://index.docker.io/v1/".
func authKey(registry string) string {
	h := image.RegistryHost(registry)
	if h == "index.docker.io" {
		return "https://index.docker.io/v1/"
	}
	return h
}

// dockerConfigPath is $DOCKER_CONFIG/config.json, or ~/.docker/config.json.
func dockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// updateDockerConfig applies change to the "auths" of the docker config
// at path, keeping every other key as it is, and writes the file back
// atomically (temp file, fsync, rename; mode 0600) when change reports a
// change.
func updateDockerConfig(path string, change func(auths map[string]json.RawMessage) bool) error {
	cfg := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading %s: %w", path, err)
	case len(strings.TrimSpace(string(b))) > 0:
		if err := json.Unmarshal(b, &cfg); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
	}
	auths := map[string]json.RawMessage{}
	if raw, ok := cfg["auths"]; ok {
		if err := json.Unmarshal(raw, &auths); err != nil {
			return fmt.Errorf("reading %s: auths: %w", path, err)
		}
	}
	if !change(auths) {
		return nil
	}
	if cfg["auths"], err = json.Marshal(auths); err != nil {
		return err
	}
	out, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return atomicfile.Write(path, append(out, '\n'), 0o600)
}
