using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;

namespace PrefPipe.Models.Remote;

/// <summary>
/// What the OpenAI-compatible client reports through the <see cref="Meter"/> named <c>PrefPipe</c> (the one the host's
/// OpenTelemetry providers listen to): HTTP attempts, retries and calls that failed after their retries, each tagged with
/// the client (<c>judge</c> or <c>generator</c>), the server's host and port and the status code or error type. No path,
/// query string, header or credential is ever a tag.
/// </summary>
internal static class RemoteTelemetry
{
    public static readonly Meter Meter = new("PrefPipe");

    public static readonly Counter<long> Requests = Meter.CreateCounter<long>("prefpipe.remote.requests", "{request}", "HTTP attempts to an OpenAI-compatible server, retries included.");
    public static readonly Counter<long> Retries = Meter.CreateCounter<long>("prefpipe.remote.retries", "{retry}", "Attempts retried after a transient failure (408, 429, 5xx, timeout, connection failure).");
    public static readonly Counter<long> Failures = Meter.CreateCounter<long>("prefpipe.remote.failures", "{call}", "Calls that failed after their retries.");

    /// <summary>The tags of one outcome: the client, the server and the status code, or the error's type name when there was no response.</summary>
    public static TagList Tags(string client, Uri server, HttpStatusCode? status, string? errorType)
    {
        var tags = new TagList { { "prefpipe.client", client }, { "server.address", server.Host }, { "server.port", server.Port } };
        if (status is { } code) tags.Add("http.response.status_code", (int)code);
        else if (errorType is not null) tags.Add("error.type", errorType);
        return tags;
    }
}
