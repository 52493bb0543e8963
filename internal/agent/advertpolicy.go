package agent

import "errors"

// errRestrictedAdvert refuses `tor advertise` on an agent whose onion
// service is restricted and whose config does not allow advertising.
var errRestrictedAdvert = &kindError{kind: "policy", err: errors.New("agent: not advertising: this agent's onion service is restricted (tor.authorized_clients), " +
	"and an advertisement would tell everyone in the DHT its onion address, its services and when it is online; " +
	`to advertise anyway set "tor": {"advertise_restricted": true} in tor.json and restart the agent`)}

// advertiseRefusal is errRestrictedAdvert when the config forbids
// advertising (see config.Config.Advertises), nil otherwise.
func (a *Agent) advertiseRefusal() error {
	if a.opts.Config.Advertises() {
		return nil
	}
	return errRestrictedAdvert
}

// startupServices are the services the agent advertises from start-up:
// the configured ones, or none when its onion service is restricted and
// the config does not allow advertising (which it logs if log is set).
func (a *Agent) startupServices(log bool) []string {
	if err := a.advertiseRefusal(); err != nil {
		if log && len(a.opts.Config.Services) > 0 && a.log != nil {
			a.log.Info("restricted onion service: not advertising the configured services (set tor.advertise_restricted to advertise)", "services", a.opts.Config.Services)
		}
		return nil
	}
	return a.opts.Config.Services
}
