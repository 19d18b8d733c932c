package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/configfile"
	"github.com/docker/cli/cli/config/types"
	"github.com/spf13/cobra"

	"github.com/lading-build/lading/image"
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
			if err := storeLogin(authKey(reg), user, pass); err != nil {
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
			found, err := eraseLogin(authKey(args[0]))
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

// dockerConfig loads $DOCKER_CONFIG/config.json (default
// ~/.docker/config.json) with docker's own code, so that credsStore and
// credHelpers send credentials to the helpers docker would use.
func dockerConfig() (*configfile.ConfigFile, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/"
		}
		dir = filepath.Join(home, ".docker")
	}
	cf, err := config.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("reading docker config: %w", err)
	}
	return cf, nil
}

// storeLogin stores credentials for the registry key where docker would
// (a credential helper, else the config file's auths), replacing other
// spellings of the same registry in the auths.
func storeLogin(key, user, pass string) error {
	cf, err := dockerConfig()
	if err != nil {
		return err
	}
	for k := range cf.AuthConfigs {
		if k != key && image.RegistryHost(k) == image.RegistryHost(key) {
			if err := cf.GetCredentialsStore(k).Erase(k); err != nil {
				return fmt.Errorf("removing the old credentials of %s: %w", k, err)
			}
		}
	}
	auth := types.AuthConfig{Username: user, Password: pass, ServerAddress: key}
	if err := cf.GetCredentialsStore(key).Store(auth); err != nil {
		return fmt.Errorf("storing credentials in %s: %w", cf.Filename, err)
	}
	return nil
}

// eraseLogin removes every stored credential of the registry key names,
// and reports whether there was one.
func eraseLogin(key string) (bool, error) {
	cf, err := dockerConfig()
	if err != nil {
		return false, err
	}
	found := false
	for k := range cf.AuthConfigs {
		if image.RegistryHost(k) != image.RegistryHost(key) {
			continue
		}
		found = true
		if err := cf.GetCredentialsStore(k).Erase(k); err != nil {
			return found, fmt.Errorf("removing the credentials of %s: %w", k, err)
		}
	}
	return found, nil
}
