package main

import (
	"github.com/mmogit/mmogit/internal/mcpserver"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newMCPCmd) }

func newMCPCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve mmogit to an AI agent as a Model Context Protocol server on stdio",
		Long: `Run a Model Context Protocol (MCP) server on stdin/stdout for an AI agent's
client (Claude Desktop, an IDE, any MCP host). It offers mmogit as tools:
remember, recall, post, show, whoami, trust_list, trust_add, trust_remove and
invite work on the config dir directly; status, discover, connect, sync,
advertise and join go through the running agent (` + "`mmogit tor start`" + `).
Recent memories are resources mmogit://memory/<id>.

The server reads this identity's seed to sign and to decrypt memories
addressed to it. Only MCP messages go to stdout; logs go to stderr (-v, -vv).

Client configuration:

  {"mcpServers": {"mmogit": {"command": "mmogit", "args": ["mcp", "--config-dir", "/path/to/.mmogit"]}}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			g.log.Info("mcp server on stdio", "config_dir", g.configDir)
			return mcpserver.Run(cmd.Context(), mcpserver.Options{ConfigDir: g.configDir, Logger: g.log})
		},
	}
}
