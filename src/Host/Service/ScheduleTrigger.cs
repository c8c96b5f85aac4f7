using System.Globalization;
using Cronos;
using PrefPipe.Host.Pipelines;

namespace PrefPipe.Host.Service;

/// <summary>
/// <c>triggers.schedule</c> in <c>triggers.time_zone</c> (Cronos: daylight-saving gaps and overlaps fire once). Each
/// occurrence is claimed as <c>_service/schedule/yyyyMMddTHHmmssZ</c> and runs as <c>NAME-sched-yyyyMMdd-HHmmss</c>
/// (UTC), so two instances, or a restarted one, never start an occurrence twice.
/// </summary>
internal sealed class ScheduleTrigger
{
    private readonly CronExpression _cron;
    private readonly TimeZoneInfo _zone;
    private readonly string _pipelineName;

    public ScheduleTrigger(TriggersSection triggers, string pipelineName)
    {
        string schedule = triggers.Schedule ?? throw new ArgumentException("triggers.schedule is not set", nameof(triggers));
        _cron = CronExpression.Parse(schedule, schedule.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        _zone = TimeZoneInfo.FindSystemTimeZoneById(triggers.TimeZone);
        _pipelineName = pipelineName;
    }

    /// <summary>The first occurrence strictly after <paramref name="after"/>, or null when there is none.</summary>
    public DateTime? Next(DateTime after) => _cron.GetNextOccurrence(DateTime.SpecifyKind(after, DateTimeKind.Utc), _zone);

    /// <summary>The newest occurrence in (<paramref name="now"/> − <paramref name="lookBack"/>, <paramref name="now"/>], or null.</summary>
    public DateTime? LatestDue(DateTime now, TimeSpan lookBack) =>
        _cron.GetOccurrences(DateTime.SpecifyKind(now - lookBack, DateTimeKind.Utc), DateTime.SpecifyKind(now, DateTimeKind.Utc), _zone, fromInclusive: false, toInclusive: true)
            .Cast<DateTime?>().LastOrDefault();

    /// <summary>The claim for one occurrence (UTC).</summary>
    public RunClaim ClaimFor(DateTime occurrenceUtc)
    {
        string stamp = occurrenceUtc.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        return new RunClaim("schedule", stamp, $"{_pipelineName}-sched-{occurrenceUtc.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}", null,
            occurrenceUtc.ToString("O", CultureInfo.InvariantCulture));
    }
}
