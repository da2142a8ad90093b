"""factory_boy factories for the models tests build on."""

import factory

from marketplace.models import Address, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"wx_user{n:05d}")
    openid = factory.Sequence(lambda n: f"openid-{n:06d}")
    nickname = factory.Sequence(lambda n: f"用户{n}")


class StaffFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"staff{n}")
    openid = None
    is_staff = True
    is_superuser = True
    password = factory.PostGenerationMethodCall("set_password", "staff-pass-123")


class AddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Address

    user = factory.SubFactory(UserFactory)
    name = "张三"
    phone = "13800138000"
    province = "广东省"
    city = "深圳市"
    district = "南山区"
    detail = "科技园 1 号"
    is_default = False
