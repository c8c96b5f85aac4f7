using System.Text;
using System.Text.Json;

namespace PrefPipe.Host.Service;

/// <summary>
/// A <c>Microsoft.Storage.BlobCreated</c> event as Event Grid delivers it to a storage queue (Event Grid schema or
/// CloudEvents 1.0; the message body may be Base64-encoded). Only the subject is used:
/// <c>/blobServices/default/containers/CONTAINER/blobs/NAME</c>.
/// </summary>
/// <param name="Id">Event id.</param>
/// <param name="Container">Container of the new blob.</param>
/// <param name="BlobName">Full blob name inside the container.</param>
/// <param name="ETag">The blob's ETag when the event carries one.</param>
internal sealed record BlobCreatedEvent(string Id, string Container, string BlobName, string? ETag)
{
    public const string EventType = "Microsoft.Storage.BlobCreated";

    private const string SubjectPrefix = "/blobServices/default/containers/";

    /// <summary>Parses a queue message body; returns null with a reason when it is not a BlobCreated event.</summary>
    public static BlobCreatedEvent? TryParse(string body, out string reason)
    {
        string json = body.TrimStart();
        if (json.Length > 0 && json[0] is not '{' and not '[')
        {
            try
            {
                json = Encoding.UTF8.GetString(Convert.FromBase64String(body.Trim()));
            }
            catch (FormatException)
            {
                reason = "the message is neither JSON nor Base64-encoded JSON";
                return null;
            }
        }
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            // Event Grid's webhook form is an array of events; a queue message holds one.
            if (root.ValueKind == JsonValueKind.Array)
            {
                if (root.GetArrayLength() != 1) { reason = $"expected one event, found {root.GetArrayLength()}"; return null; }
                root = root[0];
            }
            if (root.ValueKind != JsonValueKind.Object) { reason = "the message is not a JSON object"; return null; }
            string? type = Str(root, "eventType") ?? Str(root, "type");
            if (type != EventType) { reason = $"event type '{type}' is not {EventType}"; return null; }
            string? subject = Str(root, "subject");
            if (subject is null || !subject.StartsWith(SubjectPrefix, StringComparison.Ordinal)) { reason = $"subject '{subject}' is not {SubjectPrefix}CONTAINER/blobs/NAME"; return null; }
            string rest = subject[SubjectPrefix.Length..];
            int blobs = rest.IndexOf("/blobs/", StringComparison.Ordinal);
            if (blobs <= 0 || blobs + "/blobs/".Length >= rest.Length) { reason = $"subject '{subject}' names no blob"; return null; }
            string? etag = root.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Object ? Str(data, "eTag") : null;
            reason = "";
            return new BlobCreatedEvent(Str(root, "id") ?? "", rest[..blobs], rest[(blobs + "/blobs/".Length)..], etag);
        }
        catch (JsonException ex)
        {
            reason = $"invalid JSON: {ex.Message}";
            return null;
        }
    }

    private static string? Str(JsonElement e, string name) =>
        e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
}
