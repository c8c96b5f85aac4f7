using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using PrefPipe.Host.Diagnostics;

namespace PrefPipe.Host.Service;

/// <summary>
/// Liveness: every trigger loop <c>serve</c> started (schedule, blob poll, queue) is still running. A loop that ended, by
/// a fault or otherwise, will not start another run: the process should be restarted.
/// </summary>
internal sealed class TriggerLoopsHealthCheck(IEnumerable<IHostedService> services) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var loops = services.OfType<BackgroundService>().Where(s => s is ScheduleService or BlobPollService or QueueService).ToList();
        var stopped = loops.Where(s => s.ExecuteTask is { IsCompleted: true }).ToList();
        var data = loops.ToDictionary(s => s.GetType().Name, s => (object)(s.ExecuteTask switch
        {
            null => "starting",
            { IsFaulted: true } t => $"failed: {Artifacts.Storage.Secrets.Redact(t.Exception!.GetBaseException().Message)}",
            { IsCompleted: true } => "stopped",
            _ => "running",
        }));
        return Task.FromResult(stopped.Count == 0
            ? HealthCheckResult.Healthy($"{loops.Count} trigger loop(s) running", data)
            : HealthCheckResult.Unhealthy($"trigger loop(s) stopped: {string.Join(", ", stopped.Select(s => s.GetType().Name))}", data: data));
    }
}

/// <summary>Readiness: the run store answers (a local folder is writable; a blob container reachable), as <c>prefpipe doctor</c> checks it.</summary>
internal sealed class StorageHealthCheck(ServeSettings settings) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var check = await StorageCheck.RunAsync(settings.Pipeline.Resolve(settings.Pipeline.Definition.Storage), cancellationToken).ConfigureAwait(false);
        return check.Status == CheckStatus.Fail ? HealthCheckResult.Unhealthy(check.Detail) : HealthCheckResult.Healthy(check.Detail);
    }
}
