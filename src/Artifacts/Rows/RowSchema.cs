using System.Reflection;

namespace PrefPipe.Artifacts.Rows;

/// <summary>The schema version of an artifact row type, as the run manifest records it.</summary>
public static class RowSchema
{
    /// <summary>
    /// <typeparamref name="T"/>'s <c>public const int SchemaVersion</c> (every type in <see cref="PrefPipe.Artifacts.Rows"/>
    /// has one), or 0 for a type without one. Read once per type.
    /// </summary>
    public static int VersionOf<T>() => Cache<T>.Version;

    private static class Cache<T>
    {
        public static readonly int Version =
            typeof(T).GetField("SchemaVersion", BindingFlags.Public | BindingFlags.Static) is { IsLiteral: true } field && field.FieldType == typeof(int)
                ? (int)field.GetRawConstantValue()!
                : 0;
    }
}
