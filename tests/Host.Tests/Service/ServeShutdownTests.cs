using PrefPipe.Host.Commands;
using PrefPipe.Host.Service;

namespace PrefPipe.Host.Tests.Service;

public sealed class ServeShutdownTests
{
    [Fact]
    public void ProcessTermination_WaitsLongerThanTheHostsShutdown()
    {
        // System.CommandLine ends the process this long after SIGTERM/Ctrl+C; its default (2 s) cut the host's
        // shutdown short (exit 143, run.json left "running").
        var settings = new ServeSettings(null!, [], Once: false, JsonLogs: false);
        Assert.True(Cli.ProcessTerminationTimeout > settings.ShutdownTimeout,
            $"termination timeout {Cli.ProcessTerminationTimeout} must exceed the host's shutdown timeout {settings.ShutdownTimeout}");
    }
}
