using System.ComponentModel.DataAnnotations;
using System.Globalization;

namespace JobLog.Internal;

// The options validation source generator replaces [Range] with a copy that ignores ErrorMessage, so the messages
// would read "must be between 1000 and 2147483647". These say the rule the way the XML docs do, one per property.

/// <summary>A whole number of at least <see cref="Minimum"/>: "{0} must be at least {1}."</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class AtLeastAttribute(long minimum) : ValidationAttribute("{0} must be at least {1}.")
{
    /// <summary>The least value allowed.</summary>
    public long Minimum { get; } = minimum;

    /// <inheritdoc/>
    public override bool IsValid(object? value) => value switch
    {
        null => true,
        int i => i >= Minimum,
        long l => l >= Minimum,
        _ => false,
    };

    /// <inheritdoc/>
    public override string FormatErrorMessage(string name) =>
        string.Format(CultureInfo.InvariantCulture, ErrorMessageString, name, Minimum.ToString("N0", CultureInfo.InvariantCulture));
}

/// <summary>A whole number from <see cref="Minimum"/> to <see cref="Maximum"/>: "{0} must be {1} to {2}."</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class BetweenAttribute(int minimum, int maximum) : ValidationAttribute("{0} must be {1} to {2}.")
{
    /// <summary>The least value allowed.</summary>
    public int Minimum { get; } = minimum;

    /// <summary>The greatest value allowed.</summary>
    public int Maximum { get; } = maximum;

    /// <inheritdoc/>
    public override bool IsValid(object? value) => value is not int i || (i >= Minimum && i <= Maximum);

    /// <inheritdoc/>
    public override string FormatErrorMessage(string name) =>
        string.Format(CultureInfo.InvariantCulture, ErrorMessageString, name, Minimum, Maximum);
}

/// <summary>A <see cref="TimeSpan"/> above zero (null passes): "{0} must be positive."</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class PositiveAttribute() : ValidationAttribute("{0} must be positive.")
{
    /// <inheritdoc/>
    public override bool IsValid(object? value) => value is not TimeSpan t || t > TimeSpan.Zero;

    /// <inheritdoc/>
    public override string FormatErrorMessage(string name) => string.Format(CultureInfo.InvariantCulture, ErrorMessageString, name);
}

/// <summary>A <see cref="TimeSpan"/> of zero or more (null passes): "{0} must not be negative."</summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class NotNegativeAttribute() : ValidationAttribute("{0} must not be negative.")
{
    /// <inheritdoc/>
    public override bool IsValid(object? value) => value switch
    {
        TimeSpan t => t >= TimeSpan.Zero,
        int i => i >= 0,
        _ => true,
    };

    /// <inheritdoc/>
    public override string FormatErrorMessage(string name) => string.Format(CultureInfo.InvariantCulture, ErrorMessageString, name);
}

/// <summary>
/// A <see cref="TimeSpan"/> of at most <see cref="Days"/> days (null passes): "{0} must be at most {1} days." For the
/// options JobLog waits or retries by: .NET's timers (<c>Task.Delay</c>, <c>CancelAfter</c>) take at most 49.7 days and
/// Polly's retry delay one day, so a longer value was taken at start and stopped the application, or its writer, at
/// the first wait (session 38).
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal sealed class AtMostDaysAttribute(int days) : ValidationAttribute(days == 1 ? "{0} must be at most 1 day." : "{0} must be at most {1} days.")
{
    /// <summary>The most days allowed.</summary>
    public int Days { get; } = days;

    /// <inheritdoc/>
    public override bool IsValid(object? value) => value is not TimeSpan t || t <= TimeSpan.FromDays(Days);

    /// <inheritdoc/>
    public override string FormatErrorMessage(string name) => string.Format(CultureInfo.InvariantCulture, ErrorMessageString, name, Days);
}
