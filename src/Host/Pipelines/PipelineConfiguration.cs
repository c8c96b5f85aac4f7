using System.Collections;
using System.Globalization;
using System.Reflection;

namespace PrefPipe.Host.Pipelines;

/// <summary>
/// A loaded pipeline's stage options as configuration keys (<c>Ingest:MaxNewTokens</c>, <c>Ranking:Reward:BatchSize</c>,
/// <c>Training:Dpo:Objective:Beta</c>): what the stages' <c>AddXxx(IConfiguration)</c> registrations bind.
/// </summary>
/// <remarks>
/// Values are written the way the configuration binder reads them (invariant culture, round-trip numbers, <c>c</c>
/// durations). A null of a nullable value type is written as an empty value, which the binder reads as null; a null
/// reference is left out, which keeps the property's default.
/// </remarks>
internal static class PipelineConfiguration
{
    /// <summary>The sections of <see cref="PipelineDefinition"/> that hold stage options.</summary>
    public static readonly IReadOnlyList<string> StageSections =
        [nameof(PipelineDefinition.Ingest), nameof(PipelineDefinition.Ranking), nameof(PipelineDefinition.Split), nameof(PipelineDefinition.Training)];

    /// <summary>The stage sections of <paramref name="definition"/> as configuration key/value pairs.</summary>
    public static IEnumerable<KeyValuePair<string, string?>> Stages(PipelineDefinition definition)
    {
        ArgumentNullException.ThrowIfNull(definition);
        var list = new List<KeyValuePair<string, string?>>();
        foreach (string section in StageSections)
        {
            var property = typeof(PipelineDefinition).GetProperty(section)!;
            Flatten(property.GetValue(definition), property.PropertyType, section, list);
        }
        return list;
    }

    private static void Flatten(object? value, Type declared, string key, List<KeyValuePair<string, string?>> into)
    {
        if (value is null)
        {
            if (Nullable.GetUnderlyingType(declared) is not null) into.Add(new(key, ""));
            return;
        }
        switch (value)
        {
            case string s:
                into.Add(new(key, s));
                return;
            case Uri uri:
                into.Add(new(key, uri.OriginalString));
                return;
            case TimeSpan t:
                into.Add(new(key, t.ToString("c", CultureInfo.InvariantCulture)));
                return;
            case double d:
                into.Add(new(key, d.ToString("R", CultureInfo.InvariantCulture)));
                return;
            case float f:
                into.Add(new(key, f.ToString("R", CultureInfo.InvariantCulture)));
                return;
            case Enum or bool:
                into.Add(new(key, value.ToString()));
                return;
            case IFormattable formattable:
                into.Add(new(key, formattable.ToString(null, CultureInfo.InvariantCulture)));
                return;
            case IEnumerable items:
                int i = 0;
                foreach (object? item in items)
                    Flatten(item, item?.GetType() ?? typeof(object), $"{key}:{i++}", into);
                return;
        }
        foreach (var property in value.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            // What the binder sets: public, writable (init included), not indexed. Computed properties are left out.
            if (!property.CanWrite || property.GetIndexParameters().Length > 0) continue;
            Flatten(property.GetValue(value), property.PropertyType, $"{key}:{property.Name}", into);
        }
    }
}
