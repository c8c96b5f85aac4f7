using Microsoft.Extensions.Logging;

namespace PrefPipe.Host.Service;

/// <summary>
/// The serve host's log lines, source-generated (<see cref="LoggerMessageAttribute"/>): the template is parsed once, and
/// nothing is formatted or boxed when the level is off. Event ids are grouped by the class that logs.
/// </summary>
internal static partial class ServiceLog
{
    // BlobPollService: 1xx

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Watching {Location} every {Interval}")]
    public static partial void WatchingBlobs(this ILogger logger, string location, TimeSpan interval);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Listing {Location} failed: {Error}")]
    public static partial void ListingBlobsFailed(this ILogger logger, Exception exception, string location, string error);

    // QueueService: 2xx

    [LoggerMessage(EventId = 200, Level = LogLevel.Information, Message = "Receiving BlobCreated events from queue {Queue}")]
    public static partial void ReceivingFromQueue(this ILogger logger, string queue);

    [LoggerMessage(EventId = 201, Level = LogLevel.Error, Message = "Receiving from queue {Queue} failed: {Error}")]
    public static partial void ReceivingFromQueueFailed(this ILogger logger, Exception exception, string queue, string error);

    // ScheduleService: 3xx

    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Next scheduled run at {Occurrence:O}")]
    public static partial void NextScheduledRun(this ILogger logger, DateTime occurrence);

    // RecoveryService: 4xx

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Listing unfinished runs in {Location} failed: {Error}; retrying in {Delay}")]
    public static partial void ListingUnfinishedFailed(this ILogger logger, Exception exception, string location, string error, TimeSpan delay);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Resuming unfinished run {RunId} ({Kind} trigger {Source})")]
    public static partial void ResumingUnfinishedRun(this ILogger logger, string runId, string kind, string source);

    // OnceService: 5xx

    [LoggerMessage(EventId = 500, Level = LogLevel.Information, Message = "Nothing to do: no message, no new blob, no due schedule")]
    public static partial void NothingToDo(this ILogger logger);

    [LoggerMessage(EventId = 501, Level = LogLevel.Error, Message = "serve --once failed: {Error}")]
    public static partial void OnceFailed(this ILogger logger, Exception exception, string error);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information, Message = "Resuming cancelled run {RunId}")]
    public static partial void ResumingCancelledRun(this ILogger logger, string runId);

    // TriggerHandler: 6xx

    [LoggerMessage(EventId = 600, Level = LogLevel.Warning, Message = "Queue message {MessageId} ignored and deleted: {Reason}")]
    public static partial void MessageIgnored(this ILogger logger, string messageId, string reason);

    [LoggerMessage(EventId = 601, Level = LogLevel.Warning, Message = "Queue message {MessageId}: blob {Blob} no longer exists; nothing to run")]
    public static partial void MessageBlobGone(this ILogger logger, string messageId, string blob);

    [LoggerMessage(EventId = 602, Level = LogLevel.Information, Message = "BlobCreated {Blob} (message {MessageId}, dequeue count {DequeueCount})")]
    public static partial void BlobCreated(this ILogger logger, string blob, string messageId, long dequeueCount);

    // RunLauncher: 7xx

    [LoggerMessage(EventId = 700, Level = LogLevel.Information, Message = "Trigger {Kind}/{Key} already claimed (run {RunId}, status {Status}); nothing to start")]
    public static partial void AlreadyClaimed(this ILogger logger, string kind, string key, string runId, string status);

    [LoggerMessage(EventId = 701, Level = LogLevel.Information, Message = "Resuming run {RunId} ({Status}) for trigger {Kind}/{Key}")]
    public static partial void ResumingClaimedRun(this ILogger logger, string runId, string status, string kind, string key);

    [LoggerMessage(EventId = 702, Level = LogLevel.Warning, Message = "Skipping claim marker {Path}: {Error}")]
    public static partial void SkippingClaimMarker(this ILogger logger, string path, string error);

    [LoggerMessage(EventId = 703, Level = LogLevel.Information, Message = "A trigger was stopped by shutdown before its run started")]
    public static partial void TriggerStoppedByShutdown(this ILogger logger);

    [LoggerMessage(EventId = 704, Level = LogLevel.Error, Message = "Handling a trigger failed: {Error}")]
    public static partial void TriggerFailed(this ILogger logger, Exception exception, string error);

    [LoggerMessage(EventId = 705, Level = LogLevel.Error, Message = "Run {RunId} cannot start: {Problems}")]
    public static partial void RunCannotStart(this ILogger logger, string runId, string problems);

    [LoggerMessage(EventId = 706, Level = LogLevel.Information, Message = "Run {RunId} starting ({Kind} trigger {Source})")]
    public static partial void RunStarting(this ILogger logger, string runId, string kind, string source);

    [LoggerMessage(EventId = 707, Level = LogLevel.Information, Message = "Run {RunId}: {Line}")]
    public static partial void RunProgress(this ILogger logger, string runId, string line);

    [LoggerMessage(EventId = 708, Level = LogLevel.Information, Message = "Run {RunId} {Status}")]
    public static partial void RunEnded(this ILogger logger, string runId, string status);

    [LoggerMessage(EventId = 709, Level = LogLevel.Information, Message = "Run {RunId} is being written by {Holder} (process {Pid}, lock expires {Expires:O}); left for it")]
    public static partial void RunBusy(this ILogger logger, string runId, string holder, int pid, DateTimeOffset expires);

    [LoggerMessage(EventId = 710, Level = LogLevel.Warning, Message = "Run {RunId} cancelled by shutdown; it resumes on the next start (or: prefpipe resume --run {RunId})")]
    public static partial void RunCancelledByShutdown(this ILogger logger, string runId);

    [LoggerMessage(EventId = 711, Level = LogLevel.Error, Message = "Run {RunId} failed: {Error}")]
    public static partial void RunFailed(this ILogger logger, Exception exception, string runId, string error);
}
