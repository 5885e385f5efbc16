"""The CrossGuard policy pack: `pulumi preview --policy-pack policy`.

Each rule in policy/rules.py becomes a mandatory stack validation policy, so the same checks run here
against the engine's view and in `python -m infra plan` against the offline plan.
"""

from pulumi_policy import EnforcementLevel, PolicyPack, StackValidationPolicy

from ml_platform.policy.rules import POLICIES, Policy, Resource, StackView


def to_view(args) -> StackView:
    return StackView(
        Resource(
            type=r.resource_type,
            name=r.name,
            urn=r.urn,
            props=r.props,
            protect=bool(r.opts.protect),
            property_dependencies={key: [dep.urn for dep in deps] for key, deps in r.property_dependencies.items()},
        )
        for r in args.resources
    )


def crossguard_policy(policy: Policy) -> StackValidationPolicy:
    def validate(args, report_violation) -> None:
        for message in policy.check(to_view(args)):
            report_violation(message, None)

    return StackValidationPolicy(
        name=policy.name,
        description=policy.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


PolicyPack(name="ml-platform", policies=[crossguard_policy(policy) for policy in POLICIES])
