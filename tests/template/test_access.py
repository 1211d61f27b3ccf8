"""Issue 15 in the template: the role claims reach every function as the settings read them."""

from __future__ import annotations

from tests.template.test_template import source

from ecpay_lambda.config import parse_settings

ROLE_PARAMETERS = {
    "JwtUserClaim": "JWT_USER_CLAIM",
    "JwtGroupsClaim": "JWT_GROUPS_CLAIM",
    "JwtOperatorGroup": "JWT_OPERATOR_GROUP",
    "JwtOperatorScope": "JWT_OPERATOR_SCOPE",
}


def test_role_claims_are_parameters_passed_to_every_function() -> None:
    template = source()
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    for parameter, variable in ROLE_PARAMETERS.items():
        assert parameter in template["Parameters"]
        assert env[variable] == {"Ref": parameter}
    # The parameters' defaults are the settings' defaults: a stack deployed with none set behaves as
    # the handlers do without the variables.
    defaults = {v: str(template["Parameters"][p].get("Default", "")) for p, v in ROLE_PARAMETERS.items()}
    base = {"ECPAY_CREDENTIALS": "none", "AUTH_MODE": "jwt"}
    deployed, unset = parse_settings({**base, **defaults}), parse_settings(base)
    assert (deployed.jwt_user_claim, deployed.jwt_groups_claim) == (
        unset.jwt_user_claim,
        unset.jwt_groups_claim,
    )
    assert (deployed.jwt_operator_group, deployed.jwt_operator_scope) == (
        unset.jwt_operator_group,
        unset.jwt_operator_scope,
    )
