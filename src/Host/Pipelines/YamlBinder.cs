using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;
using YamlDotNet.RepresentationModel;

namespace PrefPipe.Host.Pipelines;

/// <summary>
/// Binds a YAML tree onto option classes: keys are the snake_case property names (or [JsonPropertyName]); unknown keys,
/// wrong types and out-of-range values are collected with their dotted path, the value and what was expected, then the
/// options validators run and their failures are reported under the same keys. Nothing is silently ignored.
/// </summary>
internal static partial class YamlBinder
{
    private static readonly Regex SecretKey = SecretKeyRegex();

    public static T Bind<T>(YamlMappingNode node, string path, List<string> problems) where T : new()
        => (T)BindObject(typeof(T), node, path, problems)!;

    /// <summary>snake_case of a PascalCase name: MaxNewTokens → max_new_tokens, TopP → top_p.</summary>
    public static string SnakeCase(string name)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0 && (char.IsLower(name[i - 1]) || (i + 1 < name.Length && char.IsLower(name[i + 1]) && char.IsUpper(name[i - 1])))) sb.Append('_');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    public static string KeyOf(PropertyInfo p) => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name ?? SnakeCase(p.Name);

    // [JsonIgnore] leaves a property out of the file; [JsonIgnore(Condition = WhenWritingNull/Default)] only keeps an unset one out of hashes.
    private static IEnumerable<PropertyInfo> Bindable(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.GetIndexParameters().Length == 0 && p.GetCustomAttribute<JsonIgnoreAttribute>() is not { Condition: JsonIgnoreCondition.Always });

    private static object? BindObject(Type type, YamlMappingNode node, string path, List<string> problems)
    {
        object target = Activator.CreateInstance(type)!;
        var props = Bindable(type).ToDictionary(KeyOf, StringComparer.Ordinal);
        foreach (var (keyNode, valueNode) in node.Children)
        {
            string key = ((YamlScalarNode)keyNode).Value ?? "";
            string at = path.Length == 0 ? key : $"{path}.{key}";
            if (SecretKey.IsMatch(key))
            {
                problems.Add($"{at}: secrets are never read from pipeline files; set them in the environment or configuration (see README).");
                continue;
            }
            if (!props.TryGetValue(key, out var prop))
            {
                problems.Add($"{at}: unknown key; expected one of {string.Join(", ", props.Keys.Order(StringComparer.Ordinal))}.");
                continue;
            }
            var value = Convert(prop.PropertyType, valueNode, at, problems, out bool ok);
            if (ok) prop.SetValue(target, value);
        }
        return target;
    }

    private static object? Convert(Type type, YamlNode node, string path, List<string> problems, out bool ok)
    {
        ok = true;
        var underlying = Nullable.GetUnderlyingType(type);
        if (node is YamlScalarNode { Value: null or "~" or "null" } && (underlying is not null || !type.IsValueType))
            return null;
        type = underlying ?? type;

        if (IsScalarType(type))
        {
            if (node is not YamlScalarNode scalar)
            {
                ok = false;
                problems.Add($"{path}: expected a single {Describe(type)} value, found a {(node is YamlSequenceNode ? "list" : "mapping")}.");
                return null;
            }
            if (TryScalar(type, scalar.Value ?? "", out object? value, out string expected)) return value;
            ok = false;
            problems.Add($"{path}: '{scalar.Value}' is not valid; expected {expected}.");
            return null;
        }
        if (type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(IList<>) || type.GetGenericTypeDefinition() == typeof(List<>) || type.GetGenericTypeDefinition() == typeof(IReadOnlyList<>)) || type.IsArray)
        {
            var element = type.IsArray ? type.GetElementType()! : type.GetGenericArguments()[0];
            if (node is not YamlSequenceNode seq)
            {
                ok = false;
                problems.Add($"{path}: expected a list of {Describe(element)}.");
                return null;
            }
            var list = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(element))!;
            int i = 0;
            foreach (var item in seq.Children)
            {
                var v = Convert(element, item, $"{path}[{i++}]", problems, out bool itemOk);
                if (itemOk) list.Add(v);
                else ok = false;
            }
            if (!type.IsArray) return list;
            var array = Array.CreateInstance(element, list.Count);
            list.CopyTo(array, 0);
            return array;
        }
        if (node is not YamlMappingNode mapping)
        {
            ok = false;
            problems.Add($"{path}: expected a mapping with keys {string.Join(", ", Bindable(type).Select(KeyOf))}.");
            return null;
        }
        return BindObject(type, mapping, path, problems);
    }

    private static bool IsScalarType(Type t) =>
        t == typeof(string) || t == typeof(bool) || t == typeof(int) || t == typeof(long) || t == typeof(double) || t == typeof(float)
        || t == typeof(Uri) || t == typeof(TimeSpan) || t.IsEnum;

    private static string Describe(Type t) => t.IsEnum ? "name" : t.Name.ToLowerInvariant();

    /// <summary>What a duration looks like, for messages.</summary>
    public const string DurationExpected = "a duration such as 250ms, 30s, 5m, 2h or 00:05:00";

    /// <summary>A duration as pipeline files (and the CLI flags that mirror their keys) write it: 250ms, 30s, 5m, 2h or 00:05:00.</summary>
    public static bool TryDuration(string text, out TimeSpan value)
    {
        var inv = CultureInfo.InvariantCulture;
        var m = DurationRegex().Match(text);
        if (m.Success)
        {
            double n = double.Parse(m.Groups[1].Value, inv);
            value = m.Groups[2].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(n),
                "s" => TimeSpan.FromSeconds(n),
                "m" => TimeSpan.FromMinutes(n),
                _ => TimeSpan.FromHours(n),
            };
            return true;
        }
        return TimeSpan.TryParse(text, inv, out value);
    }

    private static bool TryScalar(Type type, string text, out object? value, out string expected)
    {
        var inv = CultureInfo.InvariantCulture;
        value = null;
        expected = Describe(type);
        if (type == typeof(string)) { value = text; return true; }
        if (type == typeof(bool))
        {
            expected = "true or false";
            if (text is "true" or "True" or "TRUE" or "yes") { value = true; return true; }
            if (text is "false" or "False" or "FALSE" or "no") { value = false; return true; }
            return false;
        }
        if (type == typeof(int)) { expected = "a whole number"; if (int.TryParse(text.Replace("_", "", StringComparison.Ordinal), NumberStyles.Integer, inv, out int i)) { value = i; return true; } return false; }
        if (type == typeof(long)) { expected = "a whole number"; if (long.TryParse(text.Replace("_", "", StringComparison.Ordinal), NumberStyles.Integer, inv, out long l)) { value = l; return true; } return false; }
        if (type == typeof(double) || type == typeof(float))
        {
            expected = "a number";
            if (!double.TryParse(text, NumberStyles.Float, inv, out double d) || !double.IsFinite(d)) return false;
            value = type == typeof(float) ? (float)d : d;
            return true;
        }
        if (type == typeof(Uri))
        {
            expected = "an absolute URL";
            if (Uri.TryCreate(text, UriKind.Absolute, out var uri)) { value = uri; return true; }
            return false;
        }
        if (type == typeof(TimeSpan))
        {
            expected = DurationExpected;
            if (!TryDuration(text, out var duration)) return false;
            value = duration;
            return true;
        }
        // Enums: snake_case or the C# name, case-insensitive.
        var names = Enum.GetNames(type);
        expected = "one of " + string.Join(", ", names.Select(SnakeCase));
        string folded = text.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal);
        var match = names.FirstOrDefault(n => string.Equals(n, folded, StringComparison.OrdinalIgnoreCase));
        if (match is null) return false;
        value = Enum.Parse(type, match);
        return true;
    }

    /// <summary>
    /// Runs an options validator on <paramref name="target"/>, bound from the file at <paramref name="path"/>, and
    /// reports each failure under its key with the value and what was expected:
    /// <c>ranking.reward.batch_size (value 0): must be between 1 and 4096.</c>
    /// </summary>
    /// <param name="target">The bound options.</param>
    /// <param name="path">Its key in the file, "" for the whole file.</param>
    /// <param name="validate">The generated validator's check, given the name its messages start with; throws
    /// <see cref="OptionsValidationException"/> with one failure per problem.</param>
    /// <param name="problems">Where the problems go.</param>
    /// <remarks>
    /// A generated validator names an option by the path of properties from the name it was given
    /// (<c>ranking.Reward.BatchSize</c>): in an attribute's message, or as the members before the message
    /// (<c>MEMBER, MEMBER: message</c>). Each such path is mapped back to the file's keys here.
    /// </remarks>
    public static void Validate(object target, string path, Action<string> validate, List<string> problems)
    {
        try
        {
            validate(path);
        }
        catch (OptionsValidationException ex)
        {
            // The name given to the validator; with no name the generated validators start from the type's name.
            string root = path.Length == 0 ? target.GetType().Name : path;
            var context = new FailureContext(target, path, root, new Regex($@"(?<![\w.]){Regex.Escape(root)}(?:\.[A-Z]\w*)+", RegexOptions.CultureInvariant));
            foreach (string failure in ex.Failures)
                problems.Add(Describe(context, failure));
        }
    }

    /// <param name="Target">The validated object.</param>
    /// <param name="Path">Its key in the file.</param>
    /// <param name="Root">The name the validator's paths start with.</param>
    /// <param name="PropertyPath">Matches a property path under <paramref name="Root"/> in a message.</param>
    private sealed record FailureContext(object Target, string Path, string Root, Regex PropertyPath);

    private static string Describe(FailureContext c, string failure)
    {
        var parts = FailureRegex().Match(failure);
        string[] members = parts.Success ? parts.Groups["members"].Value.Split(", ") : [];
        string message = parts.Success ? parts.Groups["message"].Value : failure;
        // The option at fault: the path an attribute's message names, else the first member (a path under the root, or a
        // member of the root object).
        string? at = c.PropertyPath.Matches(message).Select(m => m.Value).MaxBy(v => v.Length);
        if (at is null && members.Length > 0)
            at = members[0].StartsWith(c.Root + ".", StringComparison.Ordinal) ? members[0] : $"{c.Root}.{members[0]}";
        if (at is null) return c.Path.Length == 0 ? message : $"{c.Path}: {message}";

        var (key, value) = Resolve(c, at);
        message = c.PropertyPath.Replace(message, m => Resolve(c, m.Value).Key);
        // "The field KEY must be ..." / "The KEY field is required." / "KEY must be ...": the key leads the line already.
        string[] leads = [$"The field {key} ", $"The {key} field ", $"{key} "];
        if (leads.FirstOrDefault(l => message.StartsWith(l, StringComparison.Ordinal)) is { } lead) message = message[lead.Length..];
        string shown = value is null or "" ? "" : $" (value {FormatValue(value)})";
        return $"{key}{shown}: {message}";
    }

    /// <summary>The file's key and the bound value of a property path under the root (<c>ranking.Reward.BatchSize</c>).</summary>
    private static (string Key, object? Value) Resolve(FailureContext c, string propertyPath)
    {
        var keys = new List<string>();
        if (c.Path.Length > 0) keys.Add(c.Path);
        object? value = null, owner = c.Target;
        foreach (string segment in propertyPath[c.Root.Length..].Split('.', StringSplitOptions.RemoveEmptyEntries))
        {
            var property = owner?.GetType().GetProperty(segment, BindingFlags.Public | BindingFlags.Instance);
            keys.Add(property is null ? SnakeCase(segment) : KeyOf(property));
            value = property?.GetValue(owner);
            owner = value;
        }
        return (string.Join('.', keys), value);
    }

    private static string FormatValue(object value) => value switch
    {
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        string text => text,
        IEnumerable items => $"[{string.Join(", ", items.Cast<object?>().Select(i => i switch { null => "null", string t => $"'{t}'", _ => FormatValue(i) }))}]",
        _ => value.ToString() ?? "",
    };

    /// <summary>What the options result builder writes: <c>MEMBER[, MEMBER]: message</c>, or the message alone.</summary>
    [GeneratedRegex(@"^(?<members>[A-Za-z_][\w.]*(?:, [A-Za-z_][\w.]*)*): (?<message>.*)$", RegexOptions.Singleline)]
    private static partial Regex FailureRegex();

    [GeneratedRegex(@"^(api_?key|.*password.*|.*secret.*|connection_string|sas(_token)?|account_key|token)$", RegexOptions.IgnoreCase)]
    private static partial Regex SecretKeyRegex();

    [GeneratedRegex(@"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)\s*$")]
    private static partial Regex DurationRegex();
}
