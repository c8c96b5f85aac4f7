using System.Text.RegularExpressions;

namespace PrefPipe.Artifacts.Storage;

/// <summary>
/// Recognises credentials written into text: Azure connection strings (<c>DefaultEndpointsProtocol=</c>,
/// <c>AccountKey=</c>, <c>SharedAccessSignature=</c>, <c>SharedAccessKey=</c>, <c>UseDevelopmentStorage=true</c>), SAS
/// queries (<c>sig=</c>), bearer tokens and passwords in URLs. Pipeline files are refused when a value has one
/// (<see cref="Find"/>); messages and records pass through <see cref="Redact"/> so none is ever printed or stored.
/// </summary>
public static partial class Secrets
{
    /// <summary>What kind of secret <paramref name="text"/> holds, for a message that must not show it; null when none.</summary>
    public static string? Find(string? text)
    {
        if (string.IsNullOrEmpty(text)) return null;
        if (ConnectionStringRegex().IsMatch(text)) return "an Azure connection string or account key";
        if (SasSignatureRegex().IsMatch(text)) return "a shared access signature (SAS token)";
        if (BearerRegex().IsMatch(text)) return "a bearer token";
        if (UrlPasswordRegex().IsMatch(text)) return "a password in a URL";
        return null;
    }

    /// <summary>
    /// <paramref name="text"/> with every secret value replaced by <c>&lt;redacted&gt;</c>: account keys, shared access
    /// signatures and keys, <c>sig=</c> values, bearer tokens and URL passwords. The rest (account names, endpoints, paths)
    /// stays so the message still says where things went wrong.
    /// </summary>
    public static string Redact(string? text)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        text = SecretPairRegex().Replace(text, m => $"{m.Groups[1].Value}{Redacted}");
        text = SasSignatureValueRegex().Replace(text, m => $"{m.Groups[1].Value}{Redacted}");
        text = BearerRegex().Replace(text, m => $"{m.Groups[1].Value}{Redacted}");
        return UrlPasswordRegex().Replace(text, m => $"{m.Groups[1].Value}{Redacted}@");
    }

    private const string Redacted = "<redacted>";

    // A connection string: any of its marker keys, or a key whose value is a secret.
    [GeneratedRegex(@"(?<![A-Za-z0-9])(DefaultEndpointsProtocol|AccountKey|SharedAccessSignature|SharedAccessKey)\s*=|UseDevelopmentStorage\s*=\s*true", RegexOptions.IgnoreCase)]
    private static partial Regex ConnectionStringRegex();

    // KEY=VALUE up to the next ';' (a SharedAccessSignature value holds '&' and '=', so only ';' or the end closes it).
    [GeneratedRegex(@"((?<![A-Za-z0-9])(?:AccountKey|SharedAccessSignature|SharedAccessKey)\s*=)[^;\s""']*", RegexOptions.IgnoreCase)]
    private static partial Regex SecretPairRegex();

    // sig= at the start of a SAS query or one of its parameters.
    [GeneratedRegex(@"(?<![A-Za-z0-9_%-])sig=", RegexOptions.IgnoreCase)]
    private static partial Regex SasSignatureRegex();

    [GeneratedRegex(@"((?<![A-Za-z0-9_%-])sig=)[^&;#\s""']*", RegexOptions.IgnoreCase)]
    private static partial Regex SasSignatureValueRegex();

    // A token, not a word: 16+ token characters with a digit ("Bearer instructions" in a prompt is not one).
    [GeneratedRegex(@"(\bBearer\s+)(?=[A-Za-z\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{16,}=*", RegexOptions.IgnoreCase)]
    private static partial Regex BearerRegex();

    // scheme://user:password@host
    [GeneratedRegex(@"([A-Za-z][A-Za-z0-9+.-]*://[^/?#@\s:]*:)[^/?#@\s]+@")]
    private static partial Regex UrlPasswordRegex();
}
