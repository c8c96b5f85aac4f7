using PrefPipe.Host.Pipelines;

namespace PrefPipe.Host.Service;

/// <summary>What <c>prefpipe serve</c> was started with.</summary>
/// <param name="Pipeline">The loaded, validated pipeline file (reloaded per run with the trigger's inputs).</param>
/// <param name="Overrides">The <c>--set key=value</c> overrides, applied to every run.</param>
/// <param name="Once">Handle one queue message, blob or due schedule, then exit.</param>
/// <param name="JsonLogs">Write logs as JSON lines (for log collectors) instead of plain lines.</param>
internal sealed record ServeSettings(LoadedPipeline Pipeline, IReadOnlyList<string> Overrides, bool Once, bool JsonLogs)
{
    /// <summary>Which triggers to serve: all, schedule or blob.</summary>
    public string Trigger { get; init; } = "all";

    /// <summary>The port that answers liveness and readiness probes over HTTP (<c>/healthz/live</c>, <c>/healthz/ready</c>), or
    /// null for none; 0 takes any free port.</summary>
    public int? HealthPort { get; init; }

    /// <summary>How long a shutdown waits for runs to reach a boundary and record themselves as cancelled.</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(25);
}

/// <summary>The process exit code the service reports (a failed run under --once is 1).</summary>
internal sealed class ServiceState
{
    private int _exitCode;

    public int ExitCode => Volatile.Read(ref _exitCode);

    public void Fail(int code) => Interlocked.CompareExchange(ref _exitCode, code, 0);
}
